// Key Vault in RBAC mode for every secret the app needs: MotherDuck token, ClickHouse password, Kafka
// password (kafka.bicep) and, only with Redis access keys, the Redis URL (redis.bicep). App settings hold
// Key Vault references, resolved with the app's user-assigned identity.
param name string
param location string
param tags object
param workspaceId string
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string
@secure()
param motherDuckToken string
@secure()
param clickHousePassword string
@description('Purge protection keeps deleted secrets for the retention period and blocks `azd down --purge`; turn it on for production.')
param enablePurgeProtection bool = false

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true // roles, not access policies
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    enablePurgeProtection: enablePurgeProtection ? true : null
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: publicNetworkAccess == 'Enabled' ? 'Allow' : 'Deny'
    }
  }
}

resource motherDuckTokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'motherduck-token'
  properties: {
    value: motherDuckToken
    contentType: 'text/plain; MotherDuck access token'
  }
}

resource clickHousePasswordSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'clickhouse-password'
  properties: {
    value: clickHousePassword
    contentType: 'text/plain; ClickHouse password'
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'audit'
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

output id string = vault.id
output name string = vault.name
output endpoint string = vault.properties.vaultUri
output motherDuckTokenSecretName string = motherDuckTokenSecret.name
output clickHousePasswordSecretName string = clickHousePasswordSecret.name
output clickHousePasswordSecretUri string = '${vault.properties.vaultUri}secrets/${clickHousePasswordSecret.name}'
