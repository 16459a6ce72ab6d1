// The StreamDuck function app on Flex Consumption (Python 3.13) with its app settings.
//
// Flex Consumption takes its runtime, scale and deployment from properties.functionAppConfig; the app settings
// and site properties listed in "Flex Consumption plan deprecations" must not be set (some, such as
// siteConfig.ftpsState, are rejected with ARM error 51021). tests/infra/test_infra_flex_consumption.py keeps
// that list and fails if one of them appears here. Pages checked:
//   https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations
//   https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan
//   https://learn.microsoft.com/azure/azure-functions/flex-consumption-how-to
//
// App settings are declared in the *Settings variables below; tests/infra/test_infra_settings_drift.py checks
// them against shared/settings.py: every variable the code reads is set here or listed as user-supplied
// in docs/deploy.md, and every StreamDuck setting set here is read by the code.
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param deploymentContainerUrl string
param storageBlobEndpoint string
param storageQueueEndpoint string
param storageTableEndpoint string
param appInsightsConnectionString string
param workspaceId string
param eventHubsNamespaceFqdn string
param mappings array
param keyVaultName string
param motherDuckTokenSecretName string
param clickHousePasswordSecretName string
@description('Empty when the Kafka broker needs no password.')
param kafkaPasswordSecretName string
param maxEventBytes int
param retryMaxCount int
param retryMinInterval string
param retryMaxInterval string
param compactionSchedule string
param compactionBudgetSeconds int
param kafkaBrokers string
param kafkaProtocol string
param kafkaAuthMode string
param kafkaUsername string
param kafkaConsumerGroup string
param topicContent string
param topicEngage string
param topicOut string
param redisUrl string
@description('Non-empty when Redis uses access keys: REDIS_URL then references this Key Vault secret.')
param redisUrlSecretName string
param clickHouseHost string
param clickHousePort int
param clickHouseUser string
param clickHouseDatabase string
param clickHouseSecure bool
@description('Flex Consumption VNet integration subnet (delegated to Microsoft.App/environments); empty for none.')
param integrationSubnetId string
param maximumInstanceCount int
param instanceMemoryMB int
@description('Further app settings ({name, value}) for optional tuning variables (docs/deploy.md).')
param extraAppSettings array = []

var kvPrefix = '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName='

// Host settings: identity-based connections (no connection strings, no keys). None of them is in the Flex
// deprecations table; AzureWebJobsStorage__* is the host storage, which Flex Consumption still needs
// (https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity).
var hostSettings = [
  { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
  { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
  { name: 'AzureWebJobsStorage__blobServiceUri', value: storageBlobEndpoint }
  { name: 'AzureWebJobsStorage__queueServiceUri', value: storageQueueEndpoint }
  { name: 'AzureWebJobsStorage__tableServiceUri', value: storageTableEndpoint }
  { name: 'EventHubConnection__fullyQualifiedNamespace', value: eventHubsNamespaceFqdn }
  { name: 'EventHubConnection__credential', value: 'managedidentity' }
  { name: 'EventHubConnection__clientId', value: identityClientId }
  // Application Insights with Entra ID only (local auth is off on the resource): the host and the Python worker
  // send telemetry as the user-assigned identity, which holds Monitoring Metrics Publisher on the resource
  // (rbac.bicep). https://learn.microsoft.com/azure/azure-functions/functions-app-settings#applicationinsights_authentication_string
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsightsConnectionString }
  { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
  // With "telemetryMode": "OpenTelemetry" in host.json, lets the Python worker export its own OpenTelemetry
  // logs, traces and metrics (azure-monitor-opentelemetry) instead of duplicate host-level entries:
  // https://learn.microsoft.com/azure/azure-functions/opentelemetry-howto#configure-application-settings
  { name: 'PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY', value: 'true' }
  // azure-identity (the Azure Monitor exporter's ManagedIdentityCredential, Redis Entra ID tokens, SDK
  // clients) picks the user-assigned identity from this.
  { name: 'AZURE_CLIENT_ID', value: identityClientId }
]

// Fixed StreamDuck settings (shared/settings.py Settings).
var streamduckSettings = [
  { name: 'EVENTHUB_NAMESPACE', value: eventHubsNamespaceFqdn }
  { name: 'MOTHERDUCK_TOKEN', value: '${kvPrefix}${motherDuckTokenSecretName})' }
  { name: 'STREAMDUCK_MAX_EVENT_BYTES', value: string(maxEventBytes) }
  { name: 'STREAMDUCK_RETRY_MAX_COUNT', value: string(retryMaxCount) }
  { name: 'STREAMDUCK_RETRY_MIN_INTERVAL', value: retryMinInterval }
  { name: 'STREAMDUCK_RETRY_MAX_INTERVAL', value: retryMaxInterval }
  { name: 'STREAMDUCK_COMPACTION_SCHEDULE', value: compactionSchedule }
  { name: 'STREAMDUCK_COMPACTION_BUDGET_SECONDS', value: string(compactionBudgetSeconds) }
  { name: 'KAFKA_BROKERS', value: kafkaBrokers }
  { name: 'KAFKA_PROTOCOL', value: kafkaProtocol }
  { name: 'KAFKA_AUTH_MODE', value: kafkaAuthMode }
  { name: 'KAFKA_USERNAME', value: kafkaUsername }
  { name: 'KAFKA_CONSUMER_GROUP', value: kafkaConsumerGroup }
  { name: 'TOPIC_CONTENT', value: topicContent }
  { name: 'TOPIC_ENGAGE', value: topicEngage }
  { name: 'TOPIC_OUT', value: topicOut }
  { name: 'REDIS_URL', value: empty(redisUrlSecretName) ? redisUrl : '${kvPrefix}${redisUrlSecretName})' }
  // Entra ID only (no access key): sign in as the app's identity (AZURE_CLIENT_ID) with a token.
  { name: 'REDIS_ENTRA_AUTH', value: empty(redisUrlSecretName) ? 'true' : 'false' }
  { name: 'CLICKHOUSE_HOST', value: clickHouseHost }
  { name: 'CLICKHOUSE_PORT', value: string(clickHousePort) }
  { name: 'CLICKHOUSE_USER', value: clickHouseUser }
  { name: 'CLICKHOUSE_PASSWORD', value: '${kvPrefix}${clickHousePasswordSecretName})' }
  { name: 'CLICKHOUSE_DATABASE', value: clickHouseDatabase }
  { name: 'CLICKHOUSE_SECURE', value: clickHouseSecure ? 'true' : 'false' }
]

var kafkaPasswordSettings = empty(kafkaPasswordSecretName) ? [] : [
  { name: 'KAFKA_PASSWORD', value: '${kvPrefix}${kafkaPasswordSecretName})' }
]

// Numbered mapping settings: element i of `mappings` is mapping N = i + 1 (shared/settings.py MAPPING_VARIABLES).
var mappingSettings = [for (m, i) in mappings: concat([
  { name: 'EVENTHUBNAME_${i + 1}', value: m.eventHub }
  { name: 'EVENTHUBNAME_${i + 1}_CONSUMER_GROUP', value: m.consumerGroup }
  { name: 'MOTHERDUCK_${i + 1}_DATABASE', value: m.database }
  { name: 'MOTHERDUCK_${i + 1}_SCHEMA', value: m.schema }
  { name: 'MOTHERDUCK_${i + 1}_TABLE', value: m.table }
  { name: 'MOTHERDUCK_${i + 1}_BATCH', value: string(contains(m, 'batch') ? m.batch : 1000) }
  { name: 'MOTHERDUCK_${i + 1}_FORMAT', value: contains(m, 'format') ? m.format : 'json' }
], contains(m, 'retentionDays') ? [
  { name: 'MOTHERDUCK_${i + 1}_RETENTION_DAYS', value: string(m.retentionDays) }
] : [])]

var appSettingsForCode = concat(streamduckSettings, kafkaPasswordSettings, flatten(mappingSettings), extraAppSettings)

// What `func start` needs to run against these resources from a developer machine (signed in with
// `az login`): no credential/clientId keys, so the host and SDKs use the developer's identity.
// infra/hooks/postprovision.* resolves the Key Vault references and writes local.settings.json.
// FUNCTIONS_WORKER_RUNTIME is for Core Tools only: on Flex Consumption it is deprecated and the runtime comes
// from functionAppConfig.runtime, so it is never in the site's app settings.
var localHostSettings = [
  { name: 'FUNCTIONS_WORKER_RUNTIME', value: 'python' }
  { name: 'AzureWebJobsStorage__blobServiceUri', value: storageBlobEndpoint }
  { name: 'AzureWebJobsStorage__queueServiceUri', value: storageQueueEndpoint }
  { name: 'AzureWebJobsStorage__tableServiceUri', value: storageTableEndpoint }
  { name: 'EventHubConnection__fullyQualifiedNamespace', value: eventHubsNamespaceFqdn }
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux; the plan's property, as in Microsoft's Flex Consumption samples (not the site's isReserved)
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'streamduck'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  // Site properties: none of them is in the Flex deprecations table; virtualNetworkSubnetId is how Flex
  // Consumption joins a subnet (flex-consumption-how-to, "Enable virtual network integration").
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId // resolve @Microsoft.KeyVault(...) settings as the app's identity
    virtualNetworkSubnetId: empty(integrationSubnetId) ? null : integrationSubnetId
    // Only siteConfig properties that Flex Consumption supports: minTlsVersion and http20Enabled are not in the
    // deprecations table. No ftpsState (Flex Consumption has no FTP; ARM error 51021 in some regions), no
    // linuxFxVersion / alwaysOn / functionAppScaleLimit / preWarmedInstanceCount: functionAppConfig replaces them.
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
      appSettings: concat(hostSettings, appSettingsForCode)
    }
    // https://learn.microsoft.com/azure/azure-functions/flex-consumption-how-to (deployment container with a
    // managed identity, instance memory, maximum instance count, runtime name and version).
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
  }
}

// No publishing with user names and passwords: azd deploys with Entra ID. (Flex Consumption has no FTP
// endpoint at all; the ftp policy keeps the setting explicit for scanners and older API versions.)
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: site
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'FunctionAppLogs'
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

output name string = site.name
output id string = site.id
output localSettings array = concat(localHostSettings, appSettingsForCode)
