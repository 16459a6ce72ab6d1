// Optional self-hosted ClickHouse on Azure Container Apps (clickHouseMode = containerapp).
// One replica on the replica's ephemeral disk: for evaluation. Container Apps can mount Azure Files only
// with a storage account key, which this deployment does not allow; use ClickHouse Cloud for durable data.
param environmentName string
param appName string
param location string
param tags object
param image string
param user string
param database string
@description('Versionless Key Vault secret URI of the ClickHouse password.')
param passwordSecretUri string
@description('User-assigned identity that reads the password from Key Vault.')
param identityId string
param workspaceName string
@description('Subnet delegated to Microsoft.App/environments; empty runs the environment without a VNet.')
param infrastructureSubnetId string
@description('VNet of infrastructureSubnetId (private DNS for the internal environment); empty for none.')
param vnetId string

var internal = !empty(infrastructureSubnetId)

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource environment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: environmentName
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'azure-monitor' // diagnostic setting below; no workspace shared key needed
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
    ]
    vnetConfiguration: internal ? {
      infrastructureSubnetId: infrastructureSubnetId
      internal: true
    } : null
  }
}

resource environmentDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: environment
  properties: {
    workspaceId: workspace.id
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

resource clickhouse 'Microsoft.App/containerApps@2024-03-01' = {
  name: appName
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: environment.id
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: true // reachable from the VNet only when the environment is internal
        targetPort: 8123 // ClickHouse HTTP interface, served as HTTPS on 443 by the ingress
        transport: 'http'
        allowInsecure: false
      }
      secrets: [
        {
          name: 'clickhouse-password'
          keyVaultUrl: passwordSecretUri
          identity: identityId
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'clickhouse'
          image: image
          resources: {
            cpu: json('2.0')
            memory: '4Gi'
          }
          env: [
            {
              name: 'CLICKHOUSE_DB'
              value: database
            }
            {
              name: 'CLICKHOUSE_USER'
              value: user
            }
            {
              name: 'CLICKHOUSE_PASSWORD'
              secretRef: 'clickhouse-password'
            }
            {
              name: 'CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT'
              value: '1'
            }
          ]
          probes: [
            {
              type: 'Readiness'
              httpGet: {
                path: '/ping'
                port: 8123
              }
              periodSeconds: 10
            }
          ]
        }
      ]
      scale: {
        minReplicas: 1
        maxReplicas: 1 // a single node: the data lives on this replica
      }
    }
  }
}

// An internal environment answers on its default domain only through private DNS. A module, because a
// resource name cannot depend on a value known only after the environment exists.
module privateZone 'container-apps-dns.bicep' = if (internal) {
  name: 'container-apps-dns'
  params: {
    zoneName: environment.properties.defaultDomain
    staticIp: environment.properties.staticIp
    vnetId: vnetId
    tags: tags
  }
}

output host string = clickhouse.properties.configuration.ingress.fqdn
